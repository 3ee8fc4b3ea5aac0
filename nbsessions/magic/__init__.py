"""The notebook surface: the ``%%agent`` / ``%agent`` magics and everything they need (IPython only here).

``magics`` parses; ``notebook`` holds the notebook's Agent, database, session, model and user; ``commands*`` are the
``%agent`` subcommands; ``cellrun`` streams a run into a cell; ``experiments`` and ``teamcells`` run compare/batch
and team/workflow cells; ``scope`` finds the notebook's database.
"""
