"""Models below the stages: where a model is and how it loads (``spec``), how images are laid
out for it (``presets``), and the named networks (``zoo``). Nothing here imports a stage."""
