"""recipes.run_files.curves_figure: an ensemble's members told apart by colour, training from
validation by line style, and the legend beside the panels rather than over the data."""

from recipes.run_files import curves_figure, plot_curves


def ensemble_epochs(members, epochs=4):
    return [
        {
            "epoch": epoch,
            "member": member,
            "loss": 1.0 / epoch + member,
            "accuracy": 0.5 + 0.1 * epoch,
            "val_loss": 1.2 / epoch + member,
            "val_accuracy": 0.45 + 0.1 * epoch,
        }
        for member in range(members)
        for epoch in range(1, epochs + 1)
    ]


def test_each_member_has_a_colour_training_solid_validation_dashed():
    figure = curves_figure(ensemble_epochs(members=5))
    panels = figure.axes
    assert [axes.get_title() for axes in panels] == ["loss", "accuracy"]
    for axes in panels:
        lines = axes.get_lines()
        assert len(lines) == 10
        # Member m draws its training line, then its validation line, in one colour of its own.
        colours = [lines[2 * member].get_color() for member in range(5)]
        assert len(set(colours)) == 5
        for member in range(5):
            training, validation = lines[2 * member], lines[2 * member + 1]
            assert validation.get_color() == training.get_color() == colours[member]
            assert (training.get_linestyle(), validation.get_linestyle()) == ("-", "--")
        assert axes.get_legend() is None
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["training", "validation"] + [
        f"member {member}" for member in range(5)
    ]


def test_the_legend_is_outside_every_panel():
    figure = curves_figure(ensemble_epochs(members=5))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend_box = figure.legends[0].get_window_extent(renderer)
    for axes in figure.axes:
        assert not legend_box.overlaps(axes.get_window_extent(renderer))


def test_one_run_has_no_member_entries_and_a_metric_only_validated_still_gets_a_panel(tmp_path):
    epochs = [
        {"epoch": 1, "loss": 2.0, "val_loss": 2.5, "val_f1": 0.3},
        {"epoch": 2, "loss": 1.0, "val_loss": 1.5},
    ]
    figure = curves_figure(epochs)
    assert [axes.get_title() for axes in figure.axes] == ["loss", "f1"]
    loss_lines = figure.axes[0].get_lines()
    assert [line.get_linestyle() for line in loss_lines] == ["-", "--"]
    assert loss_lines[0].get_color() == loss_lines[1].get_color()
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["training", "validation"]
    assert list(figure.axes[1].get_lines()[0].get_ydata()) == [0.3, None]
    plot_curves(tmp_path / "curves.png", epochs)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
