"""Carry the ASR to a lent GPU machine in parts, assemble it there, and check the GPU path.

See README.md, "GPU", for the procedure; `scripts/gpu-check-remote --help` for the steps.
"""
