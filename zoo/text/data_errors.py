"""`DataFormatError`: a data file that does not read as its format, said in one line that names the
file, the line, what was found there and what to pass to read it.

The readers (`zoo.text.read_labelled_texts`, `zoo.text.read_tagged_sentences`, ...) raise it; its
message names the fix as the reader's keyword arguments, and `command_line()` names it as the flags of
a command line that has one flag per keyword argument (`text_column=` is `--text-column`), as the
recipes do:

>>> error = DataFormatError("reviews.csv", "no text column in the header ['id', 'body', 'stars']",
...                         line=1, options={"text_column": "NAME"})
>>> str(error)
"reviews.csv, line 1: no text column in the header ['id', 'body', 'stars']: pass text_column='NAME'"
>>> error.command_line()
"reviews.csv, line 1: no text column in the header ['id', 'body', 'stars']: pass --text-column NAME"
"""


class DataFormatError(ValueError):
    """A data file that does not read as its format (or as the format it was said to be).

    Args:
        path: the file (or folder).
        problem: what was found, e.g. `"3 tab-separated fields, the header has 2"`.
        line: the 1-based line of the file where it was found, or None.
        options: `{keyword argument: value}` that reads the file (several: all of them), or None.
        advice: what to do, in words: after the options (`"(e.g. cp1252), or save the file as UTF-8"`),
            or instead of them (`"drop those examples"`); or None.

    Attributes:
        path, problem, line, options, advice: as given.
    """

    def __init__(self, path, problem, *, line=None, options=None, advice=None):
        self.path = path
        self.problem = problem
        self.line = line
        self.options = dict(options or {})
        self.advice = advice
        super().__init__(self._message(as_flags=False))

    def command_line(self):
        """The message with the fix as command-line flags (`--text-column NAME`)."""
        return self._message(as_flags=True)

    def _message(self, as_flags):
        where = str(self.path) if self.line is None else f"{self.path}, line {self.line}"
        if as_flags:
            options = [f"--{name.replace('_', '-')} {value}" for name, value in self.options.items()]
        else:
            options = [f"{name}={value!r}" for name, value in self.options.items()]
        message = f"{where}: {self.problem}"
        if options:
            message += f": pass {' and '.join(options)}"
        if self.advice:
            message += f" {self.advice}" if options else f": {self.advice}"
        return message


def quoted(line, length=60):
    """A line as an error message quotes it: its `repr`, cut after `length` characters."""
    return repr(line if len(line) <= length else line[:length] + "...")
