from django.apps import AppConfig


class GraphsConfig(AppConfig):
    name = "graphs"

    def ready(self) -> None:
        from graphs import list_cache

        list_cache.connect_signals()
