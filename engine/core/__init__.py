"""The torch-free engine: what the web process and the job processes both read.

The run configuration, the run folder, paths and workspaces, datasets (registry, readers, uploads), chat
templates, tokenisation rules, the model catalogue and hub downloads, checkpoints and run history, memory
estimates and the device picker. Nothing here imports torch or gradio when it is imported
(tests/test_boundary.py holds that): the web process starts from these modules alone.
"""
