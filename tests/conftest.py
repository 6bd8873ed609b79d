pytest_plugins = ["openelb.lab.pytest_plugin"]
