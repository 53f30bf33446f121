"""Jobs: attribution (and later steering) runs on GPU workers, one row per job as the truth."""
