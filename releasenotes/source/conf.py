# Sphinx configuration of the telemetry_lib release notes.

extensions = ['openstackdocstheme', 'reno.sphinxext']
openstackdocs_repo_name = 'openstack/telemetry_lib'
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
project = 'telemetry_lib Release Notes'
copyright = 'telemetry_lib developers'
master_doc = 'index'
html_theme = 'openstackdocs'
