"""Personal and team workspaces: their place under DATALABS_HOME."""
