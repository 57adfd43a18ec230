"""Tiny, deterministic, real transformers models built offline for the tests and benchmarks of the Hugging
Face runtime: each builder makes its tokenizer from `SENTENCES` (or an image processor), creates a randomly
initialised model with a fixed seed, saves both with `save_pretrained` into a folder and returns it, so that
`transformers.pipeline(task, model=str(folder))` loads it with no network; each takes milliseconds."""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizerFast,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
    T5TokenizerFast,
    ViTConfig,
    ViTForImageClassification,
)

SENTENCES = (
    "The cat sat on the warm mat near the kitchen window.",
    "A small dog runs through the green park every morning.",
    "I love this movie, the story is wonderful and moving!",
    "This film was terrible, slow and boring from start to end.",
    "Alice lives in Paris and works at a bakery on Mondays.",
    "Bob moved from London to Berlin with his family last year.",
    "What is the capital of France?",
    "The capital of France is Paris, a city on the Seine.",
    "Hello, how are you today?",
    "I am fine, thank you very much for asking.",
    "The weather is sunny and warm, but the wind is cold.",
    "It will rain tomorrow in New York and Boston.",
    "She reads a book about birds, trees and mountains.",
    "The quick brown fox jumps over the lazy dog.",
    "We should meet at noon near the old train station.",
    "Translate English to German: the house is blue.",
    "Numbers like 1, 2, 3 and 42 appear here too.",
    "The service was slow but the food was great.",
    "Where does Carol work? Carol works at a hospital in Rome.",
    "Thanks for your help, have a nice day!",
)
MAX_LENGTH = 64
# The shape every model here shares: big enough to be a real model, small enough to build in milliseconds.
HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 2, 37
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
EOS = "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


# The tokenizers are wrapped in the model-specific classes, not the generic PreTrainedTokenizerFast, because
# transformers 5 saves the generic one as "TokenizersBackend", a class transformers 4 cannot load. Their
# pipelines match what those classes rebuild from tokenizer.json in transformers 5. Only the byte-level BPE
# trainer is deterministic across processes (the WordPiece and Unigram ones depend on hash map order), so
# the other two vocabularies are made from the words of SENTENCES directly.


def bert_tokenizer() -> PreTrainedTokenizerFast:
    """A lowercasing WordPiece tokenizer that wraps text as [CLS] ... [SEP] (and pairs as BERT does), with
    every word of `SENTENCES` and every character (alone and as a ##suffix) in its vocabulary."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    words = {
        word
        for sentence in SENTENCES
        for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(sentence))
    }
    chars = sorted({char for word in words for char in word})
    vocab = [*BERT_SPECIAL_TOKENS, *chars, *(f"##{char}" for char in chars), *sorted(words - set(chars))]
    tokenizer.model = models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]")
    tokenizer.post_processor = processors.BertProcessing(
        ("[SEP]", vocab.index("[SEP]")), ("[CLS]", vocab.index("[CLS]"))
    )
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=MAX_LENGTH,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def gpt2_tokenizer(model_max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer whose only special token, `<|endoftext|>`, has id 0 and no pad token: the
    runtime under test must pick a pad token, and must not mistake id 0 for "no token"."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SENTENCES, trainer)
    wrapped = GPT2TokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def t5_tokenizer() -> PreTrainedTokenizerFast:
    """A Unigram tokenizer with T5's special tokens (pad 0, eos 1, unk 2) that ends every text with </s>: its
    pieces are the words of `SENTENCES` and their characters, scored by their log frequency."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="always")]
    )
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
    words = [word for sentence in SENTENCES for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(sentence)]
    # Words without their punctuation too, as the pre-tokenizer leaves "▁Paris," whole.
    counts = Counter(piece for word in words for piece in {word, *re.findall(r"▁?\w+|\W", word), *word})
    total = sum(counts.values())
    vocab = [(token, 0.0) for token in ("<pad>", "</s>", "<unk>")]
    vocab += [(piece, math.log(count / total)) for piece, count in sorted(counts.items())]
    tokenizer.model = models.Unigram(vocab, unk_id=2, byte_fallback=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    # No <extra_id_*> sentinels: they would make the tokenizer longer than the model's vocabulary.
    return T5TokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=MAX_LENGTH,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
    )


def _save(folder: Path, model_class: type[PreTrainedModel], config: PretrainedConfig, *parts: Any) -> Path:
    """Saves a new model, then `parts` (tokenizer, image processor, generation config) over its files."""
    # A private RNG stream: the same weights on every call, and the caller's own seed left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_class(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for part in parts:
        part.save_pretrained(folder)
    return folder


def _label_maps(labels: Sequence[str]) -> dict[str, Any]:
    if not labels:
        return {}
    return {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}


def _bert(folder: Path, model_class: type[PreTrainedModel], labels: Sequence[str] = ()) -> Path:
    tokenizer = bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        **_label_maps(labels),
    )
    return _save(folder, model_class, config, tokenizer)


def build_text_classifier(folder: Path, labels: Sequence[str] = ("negative", "positive")) -> Path:
    return _bert(folder, BertForSequenceClassification, labels)


def build_token_classifier(
    folder: Path, labels: Sequence[str] = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
) -> Path:
    return _bert(folder, BertForTokenClassification, labels)


def build_fill_mask(folder: Path) -> Path:
    return _bert(folder, BertForMaskedLM)


def build_feature_extractor(folder: Path) -> Path:
    return _bert(folder, BertModel)


def build_zero_shot(folder: Path) -> Path:
    # The zero-shot pipeline scores each candidate label as an NLI hypothesis, finding the "entailment" label.
    return _bert(folder, BertForSequenceClassification, ("entailment", "neutral", "contradiction"))


def build_question_answering(folder: Path) -> Path:
    return _bert(folder, BertForQuestionAnswering)


def build_gpt2(folder: Path, n_positions: int = MAX_LENGTH) -> Path:
    tokenizer = gpt2_tokenizer(n_positions)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=HEADS,
        n_inner=INTERMEDIATE,
        bos_token_id=0,
        eos_token_id=0,
    )
    # save_pretrained writes the generation config from this one: bos and eos 0, no pad.
    return _save(folder, GPT2LMHeadModel, config, tokenizer)


def build_text2text(folder: Path) -> Path:
    tokenizer = t5_tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=HIDDEN,
        d_kv=HIDDEN // HEADS,
        d_ff=INTERMEDIATE,
        num_layers=LAYERS,
        num_heads=HEADS,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    # Caps the text2text pipeline's default of 256 new tokens (with 4 beams), which takes seconds.
    generation = GenerationConfig(
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, max_length=MAX_LENGTH
    )
    return _save(folder, T5ForConditionalGeneration, config, tokenizer, generation)


def build_image_classifier(folder: Path, labels: Sequence[str] = ("cat", "dog", "bird")) -> Path:
    # transformers 5 names the PIL-based processor ViTImageProcessorPil (ViTImageProcessor needs torchvision
    # there); in transformers 4, ViTImageProcessor is the PIL-based one.
    processor_class = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
    processor = processor_class(size={"height": 32, "width": 32})
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        **_label_maps(labels),
    )
    return _save(folder, ViTForImageClassification, config, processor)


def tiny_png(color: tuple[int, int, int] = (255, 0, 0), size: int = 32) -> bytes:
    """A square PNG of one colour."""
    from PIL import Image  # Pillow is only needed by the image tests.

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "text-classification": build_text_classifier,
    "token-classification": build_token_classifier,
    "fill-mask": build_fill_mask,
    "feature-extraction": build_feature_extractor,
    "zero-shot-classification": build_zero_shot,
    "text-generation": build_gpt2,
    "image-classification": build_image_classifier,
    "question-answering": build_question_answering,
    "text2text-generation": build_text2text,
}
