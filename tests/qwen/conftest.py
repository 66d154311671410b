"""Fixtures for the Qwen tests: the packaged Qwen3 tokenizer, loaded once."""

from __future__ import annotations

import pytest

from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="session")
def encoder(tokenizer):
    return ChatMLEncoder(tokenizer)
