//! Whether a machine is getting worse: the trend of a stream's rows.
