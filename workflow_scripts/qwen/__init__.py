"""Qwen3 supervised fine-tuning arm: chat format, token budgets, training and policy.

See docs/qwen.md. Modules: ``chat_format`` (the paper's messages), ``tokenizer`` (Qwen3
tokenizer + ChatML template), ``budgets`` (n_transitions_max per env), ``data`` (training
windows and loss labels), ``model`` (model loading and the assistant-only loss), ``train``
(the training loop) and ``policy`` (greedy evaluation policy).
"""
