"""``python -m unifocal.integrations.nnunet`` prints the folder to put in ``nnUNet_extTrainer``."""

from __future__ import annotations

import os

from unifocal.integrations.nnunet import trainer_dir


def main() -> None:
    """Print the trainer folder, joined to an existing ``nnUNet_extTrainer`` value if there is one."""
    path = str(trainer_dir())
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    print(os.pathsep.join([*[p for p in current if p != path], path]))


if __name__ == "__main__":
    main()
