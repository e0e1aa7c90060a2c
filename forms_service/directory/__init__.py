"""The département's organisation as data: territories, their MDS and SLAI, and the
organismes référents working in them, with the history of every change.

- ``models``: the rows (``Territory``, ``Mds``, ``Slai``, ``Organisme``, ``DirectoryChange``);
- ``file``: the YAML file an administrator keeps (the same format for import and export);
- ``cli``: ``forms-service directory import FILE`` / ``export [FILE]`` / ``history``.
"""
