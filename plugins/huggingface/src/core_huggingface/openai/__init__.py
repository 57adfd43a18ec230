"""OpenAI-compatible endpoints (`/openai/v1`: models, completions, chat
completions, embeddings) over the models this plugin serves. They run in
the server process and reach models through the dataplane only, so they
import neither torch nor transformers."""
