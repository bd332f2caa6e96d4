"""What the user asked for, typed and validated: options, scenario files, the run's model."""
