"""kdsl: readable, correctable rules for e-commerce intent recognition.

Packages: ``kdsl.dsl`` (the language), ``kdsl.engine`` (compiled execution, ``load()``),
``kdsl.data`` (import, OCR, augmentation), ``kdsl.mining`` (rules from labelled rows),
``kdsl.adapters`` (models), ``kdsl.cli`` (the ``kdsl`` command).
"""
