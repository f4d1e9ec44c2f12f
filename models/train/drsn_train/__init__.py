"""Training recipe for drsnd's Deep Residual Shrinkage Network (Zhao et al. 2020).

Modules: `data` (recordings, time split, frames), `noise` (paper's noise
models at a set SNR), `model` (ConvNet / ResNet / DRSN-CS / DRSN-CW on one code
path), `fit` (training and evaluation), `export` (ONNX, manifest, parity
vectors), `table` (RESULTS.md), `__main__` (the command line).
"""
