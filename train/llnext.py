"""Fine-tune LLaVA-NeXT into UniSim-LL-N: ``deepspeed --num_gpus N train/llnext.py --deepspeed
train/configs/zero3.json --model_name_or_path BASE --data_path DATA.json --image_folder DIR --output_dir OUT``.

See ``--help`` and the README section "Training UniSim-LL-N"; the code is ``unisim_models.training.llnext``.
"""

import sys

from unisim_models.training.llnext import main

if __name__ == "__main__":
    sys.exit(main())
