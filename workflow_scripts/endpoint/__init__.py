"""Chat models behind an OpenAI-compatible endpoint (vLLM, transformers serve, a hosted API),
evaluated under the paper's protocol: the chat format, FIFO context and failure rule of the
Qwen policy, one request per env step.

- :mod:`.settings`: the ``endpoint.json`` an endpoint "model folder" holds (URL, model
  name, API-key variable, context budget, retries); light, for rules and CLIs;
- :mod:`.client`: one chat completion over HTTP, transport errors retried with backoff;
- :mod:`.policy`: ``load_policy(model_dir, env_id, device)``, the evaluation harness's door.

See docs/endpoints.md.
"""
