"""Exports: LiteRT with the fused LSTM kernel (`tflite`) and ONNX with native recurrent nodes (`onnx`)."""

from zoo.export.onnx import onnx
from zoo.export.tflite import tflite
