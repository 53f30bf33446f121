"""Features app: language models, transcoder sets, features with their dashboards and explanations."""
