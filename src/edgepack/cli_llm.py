"""`edgepack generate` and `edgepack perplexity`: language-model bundles (runtime/generate.py,
runtime/perplexity.py). Registered on the main group by cli.py."""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

import click

from edgepack.packager.untrusted import printable
from edgepack.runtime.errors import InputError

from .cli_show import safe


def peak_rss_mb() -> float:
    """This process's peak resident set size so far: VmHWM on Linux (ru_maxrss is carried over from the parent
    across fork and exec there), else ru_maxrss (macOS reports bytes)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def _prompt_ids(text: str | None, ids: str | None) -> Any:
    if (text is None) == (ids is None):
        raise InputError("give the prompt as --prompt TEXT or as --prompt-ids 1,2,3 (one of them)")
    if ids is not None:
        try:
            return [int(t) for t in ids.replace(" ", "").split(",") if t]
        except ValueError:
            raise InputError(f"--prompt-ids must be comma-separated integers, got {ids!r}") from None
    return text


@click.command("generate")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--prompt", default=None, help="Prompt text (needs the `tokenizers` package: edgepack[text]).")
@click.option("--prompt-ids", default=None, metavar="IDS", help="Prompt as comma-separated token ids.")
@click.option("--max-new-tokens", type=click.IntRange(1), default=64, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0: greedy; above 0: sampling (seeded by --seed).")
@click.option("--top-k", type=click.IntRange(1), default=None, help="Sample among the k most likely tokens.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Sample among the most likely tokens whose probability reaches p.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stop", multiple=True, help="Stop when the text contains this (repeatable).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop with an error if generating takes longer than this (checked at every token).")
@click.option("--json", "as_json", is_flag=True,
              help="Print text, token_ids, time_to_first_token_s, tokens_per_s and peak_rss_mb as JSON.")
def generate_cmd(bundle: str, prompt: str | None, prompt_ids: str | None, max_new_tokens: int, temperature: float,
                 top_k: int | None, top_p: float | None, seed: int, stop: tuple[str, ...], timeout: float | None,
                 as_json: bool) -> None:
    """Continue a prompt with BUNDLE's language model (KV cache; greedy unless --temperature)."""
    from edgepack.runtime import load

    session = load(bundle)
    stream = not as_json and sys.stdout.isatty()

    def show(token: int, piece: str | None) -> None:  # the bundle's tokenizer wrote the text: escaped
        click.echo(printable(piece, keep="\n\t") if piece is not None else f"[{token}]", nl=False)

    result = session.generate(_prompt_ids(prompt, prompt_ids), max_new_tokens, temperature=temperature,
                              top_k=top_k, top_p=top_p, stop=list(stop), seed=seed,
                              on_token=show if stream else None, timeout=timeout)
    if as_json:
        click.echo(json.dumps({
            "text": result.text, "token_ids": result.token_ids, "prompt_tokens": result.prompt_tokens,
            "time_to_first_token_s": result.time_to_first_token_s, "tokens_per_s": result.tokens_per_s,
            "stop_reason": result.stop_reason, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return
    if stream:
        click.echo()
    else:
        click.echo(printable(result.text, keep="\n\t") if result.text is not None
                   else " ".join(map(str, result.token_ids)))
    click.echo(f"{len(result.token_ids)} tokens, first after {result.time_to_first_token_s * 1000:.0f} ms, "
               f"{result.tokens_per_s:.1f} tokens/s, peak RSS {peak_rss_mb():.0f} MB ({result.stop_reason})",
               err=True)


@click.command("perplexity")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--text", "text_path", required=True, type=click.Path(dir_okay=False),
              help="A UTF-8 text file (tokenized with the bundle's tokenizer), or an .npz of token ids.")
@click.option("--window", type=click.IntRange(2), default=128, show_default=True,
              help="Tokens per window; each window is scored from an empty cache.")
@click.option("--json", "as_json", is_flag=True, help="Print perplexity, tokens and windows as JSON.")
def perplexity_cmd(bundle: str, text_path: str, window: int, as_json: bool) -> None:
    """Perplexity of BUNDLE's language model on your own text (lower is better)."""
    from edgepack.runtime import load
    from edgepack.runtime.feeds import token_ids_npz
    from edgepack.runtime.generate import token_ids_of
    from edgepack.runtime.perplexity import perplexity

    if not os.path.exists(text_path):
        raise InputError(f"{text_path}: no such text file")
    if not os.path.isfile(text_path):
        raise InputError(f"{text_path}: not a regular file; give a text file (.txt) or token ids (.npz)")
    session = load(bundle)
    if text_path.lower().endswith(".npz"):
        ids = token_ids_npz(text_path)
    else:
        try:
            with open(text_path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise InputError(f"{text_path}: not UTF-8 text (byte {e.start}: {e.reason}); give a UTF-8 text file "
                             "or an .npz of token ids") from None
        ids = token_ids_of(session, text)
    r = perplexity(session, ids, window)
    if as_json:
        click.echo(json.dumps({"perplexity": r.perplexity, "tokens": r.tokens, "windows": r.windows,
                               "window": r.window, "mean_nll": r.mean_nll}))
    else:
        click.echo(f"perplexity {r.perplexity:.3f} over {r.tokens} tokens ({r.windows} windows of {r.window})")


def measure_lm(bundle: str, repeat: int, as_json: bool, prompt_tokens: int = 32, new_tokens: int = 64, *,
               target: str | None = None, force: bool = False, lean: bool | None = None,
               public_key: str | None = None) -> None:
    """`measure` on a language-model bundle (runtime/llm_measure.py)."""
    from edgepack.runtime.llm_measure import lines, measure_generation

    report = measure_generation(bundle, prompt_tokens, new_tokens, repeat, target=target, force=force, lean=lean,
                                public_key=public_key)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for line in lines(report):
            click.echo(safe(line))


COMMANDS = (generate_cmd, perplexity_cmd)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
