"""Text generation with a KV cache, for bundles of causal language models in the Optimum / onnxruntime-genai
convention (input_ids, attention_mask, position_ids, past_key_values.N.key/value in; logits,
present.N.key/value out).

The cache: such a graph computes present = Concat(past, new) itself, so a step necessarily writes the whole
cache once (inside onnxruntime's Concat). Nothing else does: two buffers per cache tensor, each large enough
for the whole context (prompt + max_new_tokens, at most the model's context length), are allocated once
before the first step; each step binds one as past_key_values (viewed as [1, kv_heads, past, head_dim]) and
the other as present ([1, kv_heads, past + new, head_dim]) through onnxruntime's I/O binding, and the next
step swaps them. No step allocates, copies in Python, or lets onnxruntime allocate a cache tensor; logits go
to a preallocated buffer too.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Sequence

import numpy as np
import onnxruntime as ort

from .device import detect
from .errors import GenerationTimeout, InputError, MissingDependency, SessionError
from .llm_record import MAX_TOKEN_ID, llm_record
from .tokenizer import Streamer, Tokenizer, tokenizer_of

if TYPE_CHECKING:
    from .session import Session


@dataclass
class Generation:
    """What generate() produced and how fast. `text` is decoded when first read: after a prompt of token ids,
    only a caller that reads it loads the tokenizer (the `tokenizers` package: 5.7 MB of RSS)."""

    token_ids: list[int]
    prompt_tokens: int
    time_to_first_token_s: float
    tokens_per_s: float              # generated tokens after the first, per second of decoding
    stop_reason: str                 # "length", "eos", "stop", "context"
    timings: dict[str, float] = field(default_factory=dict)
    _decode: Callable[[], str | None] = field(default=lambda: None, repr=False, compare=False)

    @functools.cached_property
    def text(self) -> str | None:
        """The generated tokens as text; None when the bundle has no tokenizer or `tokenizers` is missing."""
        return self._decode()


@dataclass
class CacheLayout:
    layers: int
    kv_heads: int
    head_dim: int
    dtype: Any
    vocab: int | None

    @classmethod
    def of(cls, session: Session) -> CacheLayout:
        names = set(session.input_names)
        need = {"input_ids", "attention_mask", "past_key_values.0.key"}
        if not need <= names or "logits" not in session.output_names:
            raise InputError(f"{session.path}: not a language model with a KV cache (it needs inputs input_ids, "
                             "attention_mask, past_key_values.N.key/value and the output logits)")
        spec = next(i for i in session.inputs if i.name == "past_key_values.0.key")
        layers = sum(1 for n in names if n.startswith("past_key_values.") and n.endswith(".key"))
        shape = spec.shape
        heads, dim = (shape[1], shape[3]) if shape is not None and len(shape) == 4 else (None, None)
        if not isinstance(heads, int) or not isinstance(dim, int) or heads < 1 or dim < 1:
            raise InputError(f"{session.path}: past_key_values.0.key must be [batch, kv_heads, past, head_dim] with "
                             f"fixed kv_heads and head_dim dimensions, not {list(shape or [])}")
        _check_cache(session, layers, spec)
        logits = next(o for o in session.outputs if o.name == "logits")
        if not logits.shape:
            raise InputError(f"{session.path}: the output logits must be [batch, sequence, vocab], not "
                             f"{list(logits.shape or [])}")
        vocab = logits.shape[-1] if isinstance(logits.shape[-1], int) else None
        return cls(layers, heads, dim, np.dtype(spec.dtype or np.float32), vocab)


def _check_cache(session: Session, layers: int, first: Any) -> None:
    """Every layer's cache inputs and outputs exist and have layer 0's key's rank, kv_heads and head_dim, so the
    buffers bound for them fit (a bundle's graph is the packager's word, not a promise)."""
    inputs = {i.name: i for i in session.inputs}
    outputs = {o.name: o for o in session.outputs}
    for i in range(layers):
        for kind in ("key", "value"):
            for table, name in ((inputs, f"past_key_values.{i}.{kind}"), (outputs, f"present.{i}.{kind}")):
                spec = table.get(name)
                shape = spec.shape if spec is not None else None
                if (spec is None or (shape and len(shape) != 4) or  # [] : no shape recorded, bound as is
                        any(shape and isinstance(shape[d], int) and shape[d] != first.shape[d] for d in (1, 3))):
                    raise InputError(f"{session.path}: the KV cache needs {name} shaped like past_key_values.0.key "
                                     f"{list(first.shape)}, but it is "
                                     f"{'missing' if spec is None else list(shape or [])}")
                if spec.dtype != first.dtype or np.dtype(spec.dtype or np.float32).kind not in "fiu":
                    raise InputError(f"{session.path}: the KV cache's {name} must be numeric and of "
                                     "past_key_values.0.key's type")


class KVRunner:
    """Runs prefill and decode steps of one sequence on preallocated, I/O-bound buffers."""

    def __init__(self, session: Session, capacity: int, max_chunk: int):
        self.session = session
        self.layout = CacheLayout.of(session)
        self.uses_positions = "position_ids" in session.input_names
        lay = self.layout
        per = lay.kv_heads * capacity * lay.head_dim
        need = 4 * lay.layers * per * lay.dtype.itemsize
        # the logits buffer too: its vocab is the graph's word (a 17 KB bundle declaring 2**40 logits asked numpy
        # for 12 TiB, a MemoryError)
        logits_bytes = 4 * max_chunk * (lay.vocab or 0)
        memory_mb = detect().memory_mb
        memory = memory_mb << 20 if memory_mb else 1 << 40
        if need + logits_bytes > memory:  # checked before numpy is asked for it (a MemoryError, or the OOM killer)
            raise InputError(f"{session.path}: a KV cache of {capacity} positions ({lay.layers} layers, "
                             f"{lay.kv_heads} kv heads of {lay.head_dim}) and logits for {max_chunk} tokens of a "
                             f"{lay.vocab}-token vocabulary take {need + logits_bytes} bytes, more than the "
                             f"{memory} bytes of memory here; lower max_new_tokens, the prompt's length or the "
                             "window")
        self.capacity = capacity
        self.vocab = lay.vocab
        try:
            # [layer, key/value, ping/pong] flat buffers
            self.buffers = [[[np.zeros(per, lay.dtype) for _ in range(2)] for _ in range(2)]
                            for _ in range(lay.layers)]
            self.logits = np.zeros(max_chunk * (self.vocab or 1), np.float32) if self.vocab else None
        except MemoryError:  # under the machine's memory but over this process's (ulimit, cgroup)
            raise InputError(f"{session.path}: a KV cache of {capacity} positions and logits for {max_chunk} "
                             f"tokens take {need + logits_bytes} bytes, more than this process can allocate; "
                             "lower max_new_tokens, the prompt's length or the window") from None
        self.binding = session._session.io_binding()
        self.length = 0      # tokens in the cache
        self.side = 0        # which buffer holds the cache now
        self.run_options: Any = None  # onnxruntime RunOptions of every step; a watchdog sets its `terminate`

    def reset(self) -> None:
        self.length, self.side = 0, 0

    def check_ids(self, ids: Sequence[int], what: str) -> None:
        """Refuse an id the model's embedding has no row for (onnxruntime's Gather would fail mid-step)."""
        bad = next((t for t in ids if t >= self.vocab), None) if self.vocab is not None else None
        if bad is not None:
            raise InputError(f"{self.session.path}: {what} {bad} is not below the model's vocabulary size, "
                             f"{self.vocab}")

    def step(self, ids: Sequence[int]) -> np.ndarray:
        """Feed `ids` after what the cache holds; returns their logits [len(ids), vocab] (a view, valid until
        the next step)."""
        n, past = len(ids), self.length
        if past + n > self.capacity:
            raise InputError(f"the sequence needs {past + n} positions but the cache holds {self.capacity}")
        lay, b = self.layout, self.binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        b.bind_cpu_input("input_ids", np.asarray(ids, np.int64)[None])
        b.bind_cpu_input("attention_mask", np.ones((1, past + n), np.int64))
        if self.uses_positions:
            b.bind_cpu_input("position_ids", np.arange(past, past + n, dtype=np.int64)[None])
        src, dst = self.side, 1 - self.side
        element = lay.dtype.type
        for i, pair in enumerate(self.buffers):
            for k, kind in enumerate(("key", "value")):
                b.bind_input(f"past_key_values.{i}.{kind}", "cpu", 0, element, [1, lay.kv_heads, past, lay.head_dim],
                             pair[k][src].ctypes.data)
                b.bind_output(f"present.{i}.{kind}", "cpu", 0, element, [1, lay.kv_heads, past + n, lay.head_dim],
                              pair[k][dst].ctypes.data)
        vocab = self.vocab
        if self.logits is not None and vocab is not None and n * vocab <= self.logits.size:
            b.bind_output("logits", "cpu", 0, np.float32, [1, n, vocab], self.logits.ctypes.data)
            self._run()
            out = self.logits[:n * vocab].reshape(n, vocab)
        else:
            b.bind_output("logits", "cpu")
            self._run()
            out = b.copy_outputs_to_cpu()[-1].reshape(n, -1)
        self.length, self.side = past + n, dst
        return out

    def _run(self) -> None:
        try:
            self.session._session.run_with_iobinding(self.binding, self.run_options)
        except Exception as e:
            if self.run_options is not None and self.run_options.terminate:
                raise GenerationTimeout(f"{self.session.path}: a generation step was stopped at its timeout",
                                        []) from None
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise SessionError(f"{self.session.path}: onnxruntime failed a generation step: {first}") from None


class Watchdog:
    """Stops a generation `timeout` seconds after it starts: a timer thread sets `terminate` on the RunOptions
    every step runs with, which stops a step in flight (onnxruntime checks it between nodes) and every later
    one; generate() also checks the clock after each token, so a slow on_token callback counts too."""

    def __init__(self, runner: KVRunner, timeout: float | None):
        self.timeout = timeout
        self.deadline = float("inf")
        self.timer: threading.Timer | None = None
        if timeout is not None:
            runner.run_options = ort.RunOptions()
            self.deadline = time.perf_counter() + timeout
            self.timer = threading.Timer(timeout, setattr, (runner.run_options, "terminate", True))
            self.timer.daemon = True
            self.timer.start()

    def expired(self) -> bool:
        return time.perf_counter() >= self.deadline

    def error(self, path: str, token_ids: list[int]) -> GenerationTimeout:
        return GenerationTimeout(f"{path}: generation took longer than {self.timeout} s and was stopped after "
                                 f"{len(token_ids)} tokens; give a larger timeout or fewer max_new_tokens",
                                 list(token_ids))

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def pick(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
         rng: np.random.Generator | None) -> int:
    """Greedy when temperature is 0; else sample from the temperature-scaled distribution, cut to the top_k
    tokens and to the smallest set whose probability reaches top_p."""
    if temperature <= 0:
        return int(np.argmax(logits))
    if rng is None:
        raise InputError("sampling (temperature > 0) needs a random generator")
    z = logits.astype(np.float64) / temperature
    order = np.argsort(-z)
    if top_k:
        order = order[:top_k]
    p = np.exp(z[order] - z[order[0]])
    p /= p.sum()
    if top_p is not None and top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), top_p) + 1)
        order, p = order[:keep], p[:keep] / p[:keep].sum()
    return int(order[rng.choice(len(order), p=p)])


def generate(session: Session, prompt: str | Sequence[int], max_new_tokens: int = 64, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, stop: Sequence[str | int] | None = None,
             on_token: Callable[[int, str | None], None] | None = None, seed: int = 0,
             timeout: float | None = None) -> Generation:
    """Continue `prompt` (text, needing the `tokenizers` package, or token ids) by up to max_new_tokens tokens.

    timeout: seconds for the whole call (prefill, every token and the on_token callbacks). It is checked after
    every token and stops a step in flight; past it, GenerationTimeout (a RunTimeout) is raised, carrying the
    token ids generated so far."""
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if timeout is not None and not timeout > 0:
        raise InputError(f"timeout must be a positive number of seconds, got {timeout}")
    if any(isinstance(s, str) and not s for s in stop or ()):
        raise InputError("a stop text must not be empty: every text contains it")
    if temperature < 0 or (top_p is not None and not 0 < top_p <= 1) or (top_k is not None and top_k < 1):
        raise InputError("temperature must be >= 0, top_p in (0, 1] and top_k >= 1")
    llm: dict[str, Any] = llm_record(session.manifest.report, session.path)
    tok: Tokenizer | None = None
    if isinstance(prompt, str):
        tok = tokenizer_of(llm, session.path)
        ids = tok.encode(prompt)
    else:
        ids = [int(t) for t in prompt]
        if any(not 0 <= t < MAX_TOKEN_ID for t in ids):
            raise InputError(f"prompt token ids must be from 0 to {MAX_TOKEN_ID - 1}")
        if on_token is not None or any(isinstance(s, str) for s in stop or ()):  # text while generating
            tok = _optional_tokenizer(llm, session.path)
    if not ids:
        raise InputError("the prompt is empty: give at least one token")
    context = int(llm.get("context_length") or len(ids) + max_new_tokens)
    capacity = min(context, len(ids) + max_new_tokens)
    if len(ids) >= capacity:
        raise InputError(f"the prompt has {len(ids)} tokens; the model's context holds {context}")
    runner = KVRunner(session, capacity, len(ids))
    runner.check_ids(ids, "prompt token id")
    eos = {int(e) for e in llm.get("eos_token_ids", [])}
    stop_ids = {int(s) for s in stop or () if not isinstance(s, str)}
    stop_texts = [s for s in stop or () if isinstance(s, str)]
    # numpy.random costs 6.6 MB of RSS when first imported: greedy decoding never loads it
    rng = np.random.default_rng(seed) if temperature > 0 else None
    out: list[int] = []
    reason = "length"
    watchdog = Watchdog(runner, timeout)
    try:
        t0 = time.perf_counter()
        logits = runner.step(ids)[-1]
        first = 0.0
        shown = ""
        streamer = Streamer(tok) if tok is not None else None
        while True:
            token = pick(logits, temperature, top_k, top_p, rng)
            if not out:
                first = time.perf_counter() - t0
            if token in eos:
                reason = "eos"
                break
            out.append(token)
            piece = None
            if streamer is not None:
                piece = streamer.add(token)
                shown += piece
            if on_token is not None:
                on_token(token, piece)
            if token in stop_ids or (stop_texts and any(s in shown for s in stop_texts)):
                reason = "stop"
                break
            if len(out) >= max_new_tokens:
                break
            if runner.length >= capacity:
                reason = "context"
                break
            if watchdog.expired():
                raise watchdog.error(session.path, out)
            logits = runner.step([token])[0]
    except GenerationTimeout:  # a step stopped in flight: say how many tokens came before
        raise watchdog.error(session.path, out) from None
    finally:
        watchdog.cancel()
    total = time.perf_counter() - t0
    decode_s = total - first
    if len(out) > 1 and decode_s > 0:
        rate = (len(out) - 1) / decode_s
    else:
        rate = len(out) / total if total > 0 else 0.0
    decode: Callable[[], str | None]
    if tok is not None:
        decode = functools.partial(tok.decode, out)
    else:
        decode = functools.partial(_decode_later, llm, session.path, out)
    return Generation(out, len(ids), first, rate, reason, {"total_s": total}, decode)


def _optional_tokenizer(llm: dict[str, Any], path: str) -> Tokenizer | None:
    """The bundle's tokenizer, or None where it has none or `tokenizers` is not installed."""
    if not (llm.get("tokenizer") or {}).get("tokenizer.json"):
        return None
    try:
        return tokenizer_of(llm, path)
    except MissingDependency:
        return None


def _decode_later(llm: dict[str, Any], path: str, ids: list[int]) -> str | None:
    tok = _optional_tokenizer(llm, path)
    return tok.decode(ids) if tok is not None else None


def token_ids_of(session: Session, text: str) -> list[int]:
    return tokenizer_of(llm_record(session.manifest.report, session.path), session.path).encode(text)


__all__ = ["generate", "Generation", "KVRunner", "Watchdog", "CacheLayout", "pick", "token_ids_of"]
