"""Training recipes for drsnd's Deep Residual Shrinkage Networks (Zhao et al. 2020).

Modules: `data` (recordings, time split, frames), `noise` (the paper's noise
models and a plant's brown and hum, at a set SNR), `model` (ConvNet / ResNet /
DRSN-CS / DRSN-CW on one code path), `fit` (the classifier's training,
evaluation and `train` command), `denoiser` and `denoise_fit` (the denoiser and
its `denoise-train` command), `classic` and `classic_table` (the classic
denoisers and bounds it is measured against, settings chosen on training data),
`export` and `denoise_export` (each model's ONNX graph, manifest and parity
vectors), `ship` (export, parity, onnxruntime check and manifest written once;
`verify`, `reexport`), `smoke` and `checks` (CI's quick run), `table` and
`denoise_table` (RESULTS.md, RESULTS-denoise.md), `__main__` (the command line
only).
"""
