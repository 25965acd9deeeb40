"""Where the inputs come from: checkpoint series, problems to pose, and how answers are graded."""
