"""Several GPUs (or machines) for one sampling run: Ray workers, torch.distributed, FSDP2.

``runtime`` (the ComfyUI process) starts or joins Ray and drives a group of ``worker`` actors; each
worker builds the model with the pack's loaders, and runs the same sampling function the ComfyUI
process would, on a model clone made parallel by ``sequence`` (Ulysses sequence parallelism),
``passes`` (guidance passes spread over worker groups) and ``sharding`` (FSDP2 weight shards).
"""
