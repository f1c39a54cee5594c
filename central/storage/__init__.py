"""Storage: every table central keeps in ClickHouse, its keeper and its reader.

``store`` (the clients), ``schema`` (the one migration list), ``slots`` (the slot rule),
``rollup`` (the raw rollup), ``answers`` (kept slot answers), ``days`` (kept site-days).
Nothing here imports the HTTP layer or the views (checked by ``tests/test_imports.py``).
"""
