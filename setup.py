"""Installs `zoo`, `ops` and `recipes`, and compiles the custom TensorFlow ops in `ops/kernels/`.

The ops are one shared library, `ops/_zoo_ops*.so`, built with g++ against the headers and the
framework library of the installed TensorFlow (see BUILD.md). Environment variables:

- `ZOO_OPS_CXXFLAGS`: replaces the optimisation flags (default `-O3 -march=native`; AVX512-FP16 is
  always left out; use a portable target such as `-O3 -mavx2 -mfma` for a wheel that runs on other
  machines).
- `ZOO_OPS_SANITIZE=address`: builds with AddressSanitizer (see BUILD.md for how to run it).
- `ZOO_SKIP_OPS=1`: skips the C++ build; the Python side then uses its pure-TensorFlow fallbacks.
"""

import glob
import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

OPS_LIBRARY = "ops._zoo_ops"
EXPORT_REQUIRES = ["ai-edge-litert==2.3.0", "onnx==1.23.2", "onnxruntime==1.31.1"]


def kernel_sources():
    """All kernel sources, without the standalone C++ tests that sit beside them."""
    return sorted(
        path for path in glob.glob(os.path.join("ops", "kernels", "*.cc")) if not path.endswith("_test.cc")
    )


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


class BuildTensorFlowOps(build_ext):
    """Compiles the op library with g++ and TensorFlow's own compile and link flags."""

    def build_extension(self, ext):
        if os.environ.get("ZOO_SKIP_OPS") == "1":
            print("ZOO_SKIP_OPS=1: not building the custom ops (pure-TF fallbacks will be used)")
            return
        import tensorflow as tf

        optimisation = shlex.split(os.environ.get("ZOO_OPS_CXXFLAGS", "-O3 -march=native"))
        optimisation += instruction_set_exclusions()
        sanitize = os.environ.get("ZOO_OPS_SANITIZE")
        if sanitize:
            optimisation += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]
        compile_flags = (
            ["-std=c++17", "-fPIC", "-Wno-deprecated-declarations", "-Wno-ignored-attributes"]
            + optimisation
            + tf.sysconfig.get_compile_flags()
        )
        output = self.get_ext_fullpath(ext.name)
        build_dir = os.path.join(self.build_temp, "zoo_ops")
        os.makedirs(build_dir, exist_ok=True)
        os.makedirs(os.path.dirname(output), exist_ok=True)

        def compile_one(source):
            obj = os.path.join(build_dir, os.path.basename(source) + ".o")
            subprocess.check_call(["g++", "-c", source, "-o", obj] + compile_flags)
            return obj

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            objects = list(pool.map(compile_one, ext.sources))
        link_flags = ["-shared"] + optimisation + tf.sysconfig.get_link_flags()
        subprocess.check_call(["g++"] + objects + ["-o", output] + link_flags)


setup(
    name="rnn-zoo",
    version="0.1.0",
    description="Recurrent networks for Keras 3: fused CPU kernels, text pipeline, models and recipes",
    python_requires=">=3.10",
    packages=find_packages(include=["zoo", "zoo.*", "ops", "ops.*", "recipes", "recipes.*"]),
    package_data={"ops": ["kernels/*.cc", "kernels/*.h"]},
    ext_modules=[Extension(OPS_LIBRARY, sources=kernel_sources(), language="c++")],
    cmdclass={"build_ext": BuildTensorFlowOps},
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
        "test": ["pytest>=8", "ruff==0.17.6"] + EXPORT_REQUIRES,
    },
)
