"""Fine-tune Qwen3 on the expert datasets in the paper's chat format (one multi-task model).

Run under ``python -m workflow_scripts.launch workflow_scripts.train_qwen ...`` to get one
process per GPU (torchrun) on a GPU node, or one CPU process elsewhere. Resumes from the
newest checkpoint in ``--checkpoint-dir``. The ``train_qwen`` rule gives every value from
``config["qwen"]`` as a flag (:func:`workflow_scripts.qwen.settings.flags_from_config`);
``--help`` lists them. By hand, e.g. the CPU demo's tiny random Qwen3::

    python -m workflow_scripts.train_qwen --datasets results/datasets/CartPole-v1.h5 \\
        --budgets results/models/qwen/budgets.json \\
        --random-init '{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}' \\
        --display-name tiny --max-seq-length 1024 --global-batch-size 8 \\
        --micro-batch-size 4 --max-steps 20 --warmup-steps 2 --learning-rate 1e-2 \\
        --min-learning-rate 1e-3 --weight-decay 0.01 --adam-beta1 0.9 --adam-beta2 0.95 \\
        --grad-clip 1 --seed 0 --parallelism fsdp --no-gradient-checkpointing \\
        --checkpoint-every 10 --keep-checkpoints 2 --log-every 5 --num-workers 0 \\
        --checkpoint-dir results/models/qwen/checkpoints --output results/models/qwen/final
"""

from __future__ import annotations

from workflow_scripts.qwen.train import NAME, TrainSettings, train
from workflow_scripts.training import training_main


def main(argv: list[str] | None = None) -> None:
    training_main(NAME, TrainSettings, train, __doc__, argv)


if __name__ == "__main__":
    main()
