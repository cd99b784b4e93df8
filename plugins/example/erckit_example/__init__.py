"""An example erckit plugin, small enough to read in one sitting.

It shows both extension points:

* ``example.BagOfWords.v1``: an encoder registered purely through the
  ``erckit_encoders`` entry-point group in pyproject.toml;
* ``erckit_example.plugin``: a pluggy plugin (entry-point group ``erckit``)
  adding the ``erckit example-info`` command and logging training events.

This module must stay importable without torch: erckit imports it to read the
factory's signature when validating recipes.
"""

from __future__ import annotations

from typing import Any


def bag_of_words(num_classes: int, buckets: int = 1024, dim: int = 64, context: bool = False) -> Any:
    """Hashed bag-of-words over the target utterance (optionally its context): a tiny text encoder.

    buckets: size of the hashed vocabulary; dim: embedding size;
    context: also count words of the previous utterances.
    """
    from .bow import BagOfWordsEncoder

    return BagOfWordsEncoder(num_classes=num_classes, buckets=buckets, dim=dim, context=context)
