"""Every route of the tool: one blueprint per file, registered by blueprints.register_blueprints().

Nothing is imported here: the pages import each other (lti -> exam -> instructor), and a package
__init__ that imported them would be imported back by each of them.
"""
