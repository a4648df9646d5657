"""Fine-tuning the active model on the reader's own confirmed nodules (the CLI and the trainer dialog).

The pieces, each usable on its own:

* ``split``: the library's entries (optionally mixed with the phantom train split, to keep what the
  model knew), a validation part held out by study, never by nodule, so no study is on both sides.
  Studies are the entries' study UIDs (the series UID when the study's is unknown); the split is drawn
  with a fixed seed, preferring one whose held-out part holds both benign and malignant nodules.
* ``phantom_mix``: the phantom splits cut with the model's preprocessing, and the mix that repeats the
  library's nodules so they keep their weight. The phantom nodules only ever train.
* ``options``: fine-tuning defaults (few epochs, a lower learning rate, the trunk at a tenth of it, or
  frozen) turned into the engine's ``TrainConfig``.
* ``comparison``: several models on the same held-out data, side by side: AUC (where both classes are
  there), accuracy, sensitivity and specificity at each model's own threshold, attribute MAE; NaN
  where a figure cannot be had (one class only, no rated attribute). ``not_worse`` says whether the
  new model may replace the active one without a second thought.
* ``run``: the whole run as a generator of the engine's events (``data``, ``resumed``, ``step``,
  ``epoch``, ``done``) ending with ``finished`` (the new model, its card, the comparison). It never
  writes a version and never touches the active model or the library: keeping the new model
  (``keep``) is the caller's choice. With a ``state_path`` a cancelled, crashed or killed run
  continues from its last complete epoch.
"""
