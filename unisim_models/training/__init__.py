"""Training the CLIP-based UniSim models (paper Sec. 3.3, App. B.2): multi-task LoRA fine-tuning of
an HF ``CLIPModel``'s vision tower with the hinge loss of Eq. 1, one batch of every core task per
step (Eq. 2), data-parallel through accelerate. ``train/clip_lora.py`` is the command line.

- ``config``: the paper's defaults, the command line and config files, the checks on names.
- ``data``: the training sets of each task, the seeded global sample order, the per-step batches
  decoded and preprocessed in DataLoader workers.
- ``model``: the base model, LoRA on the vision tower, the loss module the prepared model runs.
- ``trainer``: the accelerate loop, checkpoints and resume, the adapter and its metadata.
- ``validation``: periodic held-out accuracy through ``unisim_clip`` and lmms-eval's metric hook.

The UniSim-LL-N side: ``instructions`` (+ ``m4_instruct``, ``instructions_cli``) writes its
instruction data; ``llnext`` is the DeepSpeed trainer behind ``train/llnext.py``.
"""

__all__ = ["TrainConfig", "TrainingError", "build_parser", "resolve_config", "train"]


def __getattr__(name: str):
    # lazily: ``unisim-bench`` imports the light command modules of this package (instructions_cli)
    # on every start, and the trainer pulls in torch, accelerate and transformers
    if name == "train":
        from .trainer import train

        return train
    if name in __all__:
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
