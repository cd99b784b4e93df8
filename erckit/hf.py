"""Hugging Face helpers shared by every HF-backed encoder (no model-specific code).

Three ways to get a backbone, one function (``load_backbone``):

* ``config={...}``: a randomly initialised model built from
  ``AutoConfig.for_model(**config)`` (tiny models for tests and the quickstart;
  no hub, no weights).
* ``pretrained="org/name"`` or a local directory: ``from_pretrained`` (the real
  path; honours ``HF_HUB_OFFLINE=1`` like any HF call), its config optionally
  changed by ``overrides`` (``{"mask_time_length": 3}``).
* inside ``rebuild_from_assets(directory)``: the HF config an encoder wrote with
  ``save_assets`` into ``directory`` (no weights, no download). The model loader
  enters it around each encoder factory call, one directory per encoder
  (``<model dir>/encoders/<name>``), and then loads the weights from
  ``model.safetensors`` itself. Tokenizers and processors follow the same rule.

``load_tokenizer("erckit:bytes")`` builds a deterministic byte-level tokenizer
locally (256 byte tokens + RoBERTa-style specials) so tiny text models need no
hub either.

Everything heavy (transformers, tokenizers) is imported inside the functions,
so importing this module is cheap.
"""

from __future__ import annotations

import contextvars
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

# Locally built tokenizers live with the data (the demo data set ships one); named here too.
from .data.tokenizers import bytes_tokenizer, word_tokenizer  # noqa: F401
from .errors import ErckitError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BYTES_TOKENIZER = "erckit:bytes"

# RoBERTa's special-token layout: <s>=0, <pad>=1, </s>=2, <unk>=3, bytes, then <mask>.

_assets: contextvars.ContextVar[Path | None] = contextvars.ContextVar("erckit_hf_assets", default=None)


@contextmanager
def rebuild_from_assets(directory: str | Path) -> Iterator[Path]:
    """Within this block, HF loaders build from the files saved in ``directory``.

    ``load_backbone`` reads ``directory/config.json`` (random init: the caller
    loads weights afterwards), ``load_tokenizer`` and ``load_processor`` read
    the tokenizer/processor files there. Nothing is downloaded. A contextvar,
    so nested blocks and threads behave. The directory may be absent or empty
    for encoders that save no assets; a loader that needs a file says which.
    """
    directory = Path(directory)
    if (directory / "config.json").is_file():
        # Tokenizers and processors read it too (for its model_type): check it before any of them.
        _check_model_type(directory / "config.json", required=False)
    token = _assets.set(directory)
    try:
        yield directory
    finally:
        _assets.reset(token)


def assets_directory() -> Path | None:
    """The directory set by the enclosing ``rebuild_from_assets`` block, if any."""
    return _assets.get()


def _auto_class(auto_class_name: str) -> Any:
    import transformers

    try:
        return getattr(transformers, auto_class_name)
    except AttributeError:
        raise ErckitError(f"transformers has no class {auto_class_name!r} (e.g. 'AutoModel', 'AutoModelForMaskedLM')") from None


def build_config(config: dict[str, Any]) -> Any:
    """An HF config from a plain dict that names its ``model_type``."""
    from transformers import AutoConfig

    values = dict(config)
    model_type = values.pop("model_type", None)
    if not model_type:
        raise ErckitError(f"an HF config table needs a 'model_type' (e.g. 'roberta'); got keys {sorted(config)}")
    try:
        return AutoConfig.for_model(model_type, **values)
    except ValueError as error:
        raise ErckitError(f"invalid HF config: {error}") from None


def load_backbone(
    auto_class_name: str,
    pretrained: str,
    config: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> "PreTrainedModel":
    """An HF model: rebuilt from saved assets, random from ``config``, or ``from_pretrained``.

    ``auto_class_name`` names a transformers auto class, e.g. ``"AutoModel"``.
    ``overrides`` set attributes of the backbone's config (e.g. data2vec-audio's
    ``mask_time_length``) on a pretrained model or a ``config`` table; each must
    be an attribute that config already has, so a typo is an error rather than a
    silently ignored key. Saved assets already hold them (their config.json was
    written after the overrides).
    """
    auto = _auto_class(auto_class_name)
    assets = assets_directory()
    if assets is not None:
        # Random init is wasted work here (weights follow), but it keeps one
        # code path and never touches the network.
        return auto.from_config(saved_config(assets))
    if config is not None:
        return auto.from_config(_overridden(build_config(config), overrides))
    try:
        if not overrides:
            return auto.from_pretrained(pretrained)
        from transformers import AutoConfig

        loaded = _overridden(AutoConfig.from_pretrained(pretrained), overrides)
        return auto.from_pretrained(pretrained, config=loaded)
    except OSError as error:
        raise ErckitError(
            f"cannot load pretrained model {pretrained!r}: {error}. Pass a local directory, "
            "or a `config` table for a randomly initialised model."
        ) from None


def _overridden(config: Any, overrides: dict[str, Any] | None) -> Any:
    """``config`` with ``overrides`` set; a key the config does not have is an error naming the model type."""
    for key, value in (overrides or {}).items():
        if not hasattr(config, key):
            raise ErckitError(
                f"config override {key!r}: a {config.model_type!r} config has no such setting "
                "(override only keys its config.json or transformers' config class defines)"
            )
        try:
            setattr(config, key, value)
        except (AttributeError, TypeError, ValueError) as error:
            raise ErckitError(f"config override {key!r} = {value!r} for {config.model_type!r}: {_one_line(error)}") from None
    return config


def saved_config(assets: Path) -> Any:
    """The HF config an encoder saved in ``assets``: never remote code; errors name the file and key."""
    from transformers import AutoConfig

    path = assets / "config.json"
    if not path.is_file():
        raise ErckitError(f"{assets} has no config.json: the model directory is incomplete")
    model_type = _check_model_type(path, required=True)
    try:
        return AutoConfig.from_pretrained(str(assets), trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise ErckitError(f"{path}: not a usable {model_type!r} config: {_one_line(error)}") from None


def _check_model_type(path: Path, required: bool) -> str | None:
    """A saved HF config's ``model_type`` must be one transformers knows (never remote code)."""
    import json

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        raise ErckitError(f"{path}: not a readable JSON file") from None
    if not isinstance(config, dict):
        raise ErckitError(f"{path}: expected a JSON object")
    if "model_type" not in config and not required:
        return None
    model_type = config.get("model_type")
    import transformers
    from transformers import CONFIG_MAPPING

    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ErckitError(
            f"{path}: model_type {model_type!r} is not a model type transformers {transformers.__version__} knows "
            "(e.g. 'roberta', 'bert', 'data2vec-audio', 'timesformer')"
        )
    return model_type


def _one_line(error: object) -> str:
    from .modeldir import one_line

    return one_line(error)


def save_backbone_config(model: "PreTrainedModel", directory: str | Path) -> None:
    """Write the model's HF config (not its weights) so ``load_backbone`` can rebuild it."""
    model.config.save_pretrained(str(directory))


def load_tokenizer(spec: str) -> "PreTrainedTokenizerBase":
    """A tokenizer from a hub id / local directory, or ``"erckit:bytes"`` built locally.

    Inside ``rebuild_from_assets`` the saved tokenizer files win over ``spec``.
    """
    from transformers import AutoTokenizer

    assets = assets_directory()
    if assets is not None:
        return _from_assets(AutoTokenizer, assets, "tokenizer")
    if spec == BYTES_TOKENIZER:
        return bytes_tokenizer()
    try:
        return AutoTokenizer.from_pretrained(spec)
    except OSError as error:
        raise ErckitError(f"cannot load tokenizer {spec!r}: {error}. Use a local directory or {BYTES_TOKENIZER!r}.") from None


def _from_assets(auto: Any, assets: Path, what: str) -> Any:
    try:
        return auto.from_pretrained(str(assets), trust_remote_code=False)
    except Exception as error:  # noqa: BLE001 - saved files are untrusted; tokenizers raises bare Exception
        raise ErckitError(
            f"cannot rebuild the {what} from {assets}: {type(error).__name__}: {_one_line(error)}. "
            "The model directory is incomplete or damaged."
        ) from None



def load_processor(auto_class_name: str, pretrained: str | None, fallback: Callable[[], Any]) -> Any:
    """A feature extractor / image processor, e.g. ``AutoFeatureExtractor``.

    Saved assets win; with ``pretrained=None`` (a model built from a config)
    ``fallback()`` builds one; a pretrained model that ships no processor also
    gets ``fallback()``, with a warning, since its preprocessing is then a guess.
    """
    auto = _auto_class(auto_class_name)
    assets = assets_directory()
    if assets is not None:
        return _from_assets(auto, assets, "processor")
    if pretrained is None:
        return fallback()
    try:
        return auto.from_pretrained(pretrained)
    except (OSError, ValueError) as error:
        warnings.warn(f"{pretrained!r} has no usable processor ({error}); using erckit's defaults", stacklevel=2)
        return fallback()


def usable_positions(model: "PreTrainedModel") -> int | None:
    """How many tokens a text model accepts (None if unbounded/unknown).

    RoBERTa-style position embeddings reserve ``padding_idx + 1`` slots
    (514 -> 512 usable); detected from the module instead of the model type.
    """
    config = model.config
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    embeddings = getattr(model, "embeddings", None)
    positions = getattr(embeddings, "position_embeddings", None)
    padding_idx = getattr(positions, "padding_idx", None)
    if padding_idx is not None:
        limit -= padding_idx + 1
    return int(limit)
