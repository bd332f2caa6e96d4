"""What a run leaves behind: the results document, the table, charts, progress, files."""
