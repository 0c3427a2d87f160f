"""Installs `zoo`, `ops` and `recipes`, and compiles the custom TensorFlow ops in `ops/kernels/`.

The ops are one shared library, `ops/_zoo_ops*.so`, built with g++ against the headers and the
framework library of the installed TensorFlow (see BUILD.md). Environment variables:

- `ZOO_OPS_CXXFLAGS`: replaces the optimisation flags (default `-O3 -march=native`; AVX512-FP16 is
  always left out; use a portable target such as `-O3 -mavx2 -mfma` for a wheel that runs on other
  machines).
- `ZOO_OPS_SANITIZE=address`: builds with AddressSanitizer (see BUILD.md for how to run it).
- `ZOO_SKIP_OPS=1`: skips the C++ build; the Python side then uses its pure-TensorFlow fallbacks.

`python setup.py kernel_tests` builds and runs the C++ unit tests of the kernels' algorithms
(`ops/kernels/*_test.cc`, one binary each, without TensorFlow), with the same flags.
"""

import glob
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import Command, Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

OPS_LIBRARY = "ops._zoo_ops"
KERNELS = os.path.join("ops", "kernels")
EXPORT_REQUIRES = ["ai-edge-litert==2.3.0", "onnx==1.23.2", "onnxruntime==1.31.1"]


def kernel_sources():
    """All kernel sources, without the standalone C++ tests that sit beside them."""
    return sorted(path for path in glob.glob(os.path.join(KERNELS, "*.cc")) if not path.endswith("_test.cc"))


def algorithm_sources():
    """The kernels' algorithms without their TensorFlow glue (`*_kernel.cc`): what the tests link."""
    return [path for path in kernel_sources() if not path.endswith("_kernel.cc")]


def test_sources():
    return sorted(glob.glob(os.path.join(KERNELS, "*_test.cc")))


def compiler_accepts(flag):
    """Whether g++ accepts `flag` (older compilers reject flags for newer instruction sets)."""
    probe = ["g++", flag, "-x", "c++", "-fsyntax-only", os.devnull]
    return subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def instruction_set_exclusions():
    """Flags that turn off instruction sets TensorFlow's bundled Eigen cannot compile for.

    With AVX512-FP16 enabled (`-march=native` on Sapphire Rapids and newer Xeons), Eigen's
    `PacketMathFP16.h` in TensorFlow 2.21's headers fails to compile under g++ 12. The kernels do
    their arithmetic in float32, so nothing is lost by leaving that instruction set out.
    """
    return [flag for flag in ["-mno-avx512fp16"] if compiler_accepts(flag)]


def quiet_warnings():
    """Warnings about TensorFlow's Eigen headers and the products' 64-byte GCC vectors that say
    nothing about this code: Eigen's false-sharing alignment, and the ABI of a vector return
    without AVX-512 (every caller is compiled with the same flags)."""
    return [flag for flag in ["-Wno-interference-size", "-Wno-psabi"] if compiler_accepts(flag)]


def optimisation_flags():
    """`ZOO_OPS_CXXFLAGS` (or `-O3 -march=native`), the exclusions, and the sanitizer if asked for."""
    optimisation = shlex.split(os.environ.get("ZOO_OPS_CXXFLAGS", "-O3 -march=native"))
    optimisation += instruction_set_exclusions()
    sanitize = os.environ.get("ZOO_OPS_SANITIZE")
    if sanitize:
        optimisation += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]
    return optimisation


def compile_flags():
    """g++ flags of every kernel source: TensorFlow's (its headers, Eigen's among them) and ours."""
    import tensorflow as tf

    return (
        ["-std=c++17", "-fPIC", "-Wno-deprecated-declarations", "-Wno-ignored-attributes"]
        + quiet_warnings()
        + optimisation_flags()
        + tf.sysconfig.get_compile_flags()
    )


def compile_all(sources, build_dir, flags, only_if_stale=False):
    """Compiles `sources` in parallel into `build_dir`; returns the object files. With
    `only_if_stale`, an object newer than its source and every kernel header, built with the same
    flags, is kept (a rebuild after editing one `.cc` compiles that file only)."""
    os.makedirs(build_dir, exist_ok=True)
    stamp = os.path.join(build_dir, "flags")
    flags_changed = not os.path.exists(stamp) or open(stamp).read() != " ".join(flags)
    newest_header = max(os.path.getmtime(path) for path in glob.glob(os.path.join(KERNELS, "*.h")))

    def compile_one(source):
        obj = os.path.join(build_dir, os.path.basename(source) + ".o")
        fresh = (
            only_if_stale
            and not flags_changed
            and os.path.exists(obj)
            and os.path.getmtime(obj) > max(os.path.getmtime(source), newest_header)
        )
        if not fresh:
            subprocess.check_call(["g++", "-c", source, "-o", obj] + flags)
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objects = list(pool.map(compile_one, sources))
    with open(stamp, "w") as f:
        f.write(" ".join(flags))
    return objects


class BuildTensorFlowOps(build_ext):
    """Compiles the op library with g++ and TensorFlow's own compile and link flags."""

    def build_extension(self, ext):
        if os.environ.get("ZOO_SKIP_OPS") == "1":
            print("ZOO_SKIP_OPS=1: not building the custom ops (pure-TF fallbacks will be used)")
            return
        import tensorflow as tf

        output = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(output), exist_ok=True)
        build_dir = os.path.join(self.build_temp, "zoo_ops")
        objects = compile_all(ext.sources, build_dir, compile_flags(), only_if_stale=True)
        link_flags = ["-shared"] + optimisation_flags() + tf.sysconfig.get_link_flags()
        subprocess.check_call(["g++"] + objects + ["-o", output] + link_flags)


class KernelTests(Command):
    """Builds each `ops/kernels/*_test.cc` into a binary with the algorithm sources (no TensorFlow
    glue, no TensorFlow library), runs them all, and fails if any test failed."""

    description = "build and run the C++ unit tests of the kernels' algorithms"
    user_options = [("filter=", None, "run only the tests whose names contain this")]

    def initialize_options(self):
        self.filter = ""

    def finalize_options(self):
        pass

    def run(self):
        build_dir = os.path.join("build", "kernel_tests")
        flags = compile_flags()
        algorithms = compile_all(algorithm_sources(), build_dir, flags, only_if_stale=True)
        tests = compile_all(test_sources(), build_dir, flags, only_if_stale=True)
        passed = failed = 0
        for test in tests:
            binary = test.removesuffix(".cc.o")
            link = ["g++", test, *algorithms, "-o", binary, "-pthread", *optimisation_flags()]
            subprocess.check_call(link)
            print(f"{os.path.basename(binary)}:", flush=True)
            result = subprocess.run([binary, self.filter], stdout=subprocess.PIPE, text=True)
            print(result.stdout, end="", flush=True)
            counts = result.stdout.strip().splitlines()[-1].split() if result.stdout.strip() else []
            if result.returncode == 0 and len(counts) == 4 and counts[1] == "passed,":
                passed += int(counts[0])
            else:
                failed += int(counts[2]) if len(counts) == 4 and counts[3] == "failed" else 1
        print(f"kernels: {passed} passed, {failed} failed")
        if failed or not passed:
            sys.exit(1)


setup(
    name="rnn-zoo",
    version="0.1.0",
    description="Recurrent networks for Keras 3: fused CPU kernels, text pipeline, models and recipes",
    python_requires=">=3.10",
    packages=find_packages(include=["zoo", "zoo.*", "ops", "ops.*", "recipes", "recipes.*"]),
    package_data={"ops": ["kernels/*.cc", "kernels/*.h"], "zoo.text": ["data/*.gz"]},
    ext_modules=[Extension(OPS_LIBRARY, sources=kernel_sources(), language="c++")],
    cmdclass={"build_ext": BuildTensorFlowOps, "kernel_tests": KernelTests},
    install_requires=[
        "tensorflow==2.21.0",
        "tensorflow-text==2.21.*",
        "keras==3.15.*",
        "tensorflow-datasets==4.9.*",
        "sentencepiece>=0.2,<0.3",
        "numpy",
        "matplotlib",
        # keras.callbacks.TensorBoard needs it; TF 2.21 no longer installs it.
        "tensorboard==2.21.*",
    ],
    extras_require={
        # The runtimes zoo.export writes for and its tests run: LiteRT and ONNX Runtime.
        "export": EXPORT_REQUIRES,
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff==0.17.6", "clang-format==23.1.5"] + EXPORT_REQUIRES,
    },
)
