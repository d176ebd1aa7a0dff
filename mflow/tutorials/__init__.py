"""Tutorial flows shipped with mflow; each is a complete flow file to read, check and run."""
