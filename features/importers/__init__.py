"""Bulk import of feature dashboards and explanations, one module per format.

- ``dashboards``: circuit-tracer's feature JSON and the files, folders and archives that hold it;
- ``writer``: parsed dashboards into Postgres, in resumable batches (``import_features``);
- ``explanations``: explanation JSON lines (``import_explanations``);
- ``fields``: the checks of single values they share (``FeatureFormatError``).
"""
