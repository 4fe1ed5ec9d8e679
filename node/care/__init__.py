"""The rest of the care chain: care delivered under its toewijzing, the CAK's eigen bijdrage, meldingen that get
answered, and retention that runs itself."""
