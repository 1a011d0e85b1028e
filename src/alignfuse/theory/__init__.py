"""Theory stage: the sample-complexity argument, learning-curve fits and d-scaling exponents."""
