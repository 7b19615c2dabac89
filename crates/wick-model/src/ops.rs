//! Fused operations with their own backward pass (filled in by the ops work).
