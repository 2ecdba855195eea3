"""Excitor (LLaMA-Excitor, Zou et al., CVPR 2024) training in plain PyTorch, exported by the Excitor
project's `excitor export-job`: the same model, data, recipe and files as the project's engine."""
