"""党员学习资料库: study materials, the branch library, and 补学 for members who missed a session."""
