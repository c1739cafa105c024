"""Train a UniSim CLIP model: ``accelerate launch train/clip_lora.py --base-model B --output-dir O``.

See ``--help`` and the README section "Training UniSim (CLIP)"; the code is ``unisim_models.training``.
"""

import sys

from unisim_models.training import TrainingError, resolve_config, train


def main(argv=None) -> int:
    try:
        train(resolve_config(argv))
    except TrainingError as e:
        print(f"clip_lora: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
