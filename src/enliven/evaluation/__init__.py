"""Measure how faithful an animation is: self- and cross-reenactment benchmarks with offline models."""
