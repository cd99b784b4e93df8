"""Baseline components shipped with erckit (torch modules; one role per file).

* ``fusers``: ``ConcatFuser`` (erckit.ConcatFuser.v1), ``LateFusion`` (erckit.LateFusion.v1)
* ``distillers``: ``KLDistill`` (erckit.KLDistill.v1)
* ``audio``: ``LogMelAudio`` (erckit.LogMelAudio.v1)
* ``visual``: ``TimmFrames`` (erckit.TimmFrames.v1), plus frame helpers other encoders reuse

Their factories (and registration) live in ``erckit.builtin.components``, which
imports without torch; importing this package does not import the submodules.
"""
