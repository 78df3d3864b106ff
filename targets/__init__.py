"""Device profiles: one declarative JSON file per target, read by edgepack.runtime.profile."""
