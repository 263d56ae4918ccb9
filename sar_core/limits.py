"""Resource caps: one user of a shared server cannot exhaust its memory or CPU."""

MAX_TRIALS = 2000  # Monte Carlo trials in one campaign
MAX_EPOCHS = 300  # training epochs
MAX_WIDTH = 1024  # neurons in one hidden layer / channels in one conv layer
MAX_DEPTH = 6  # hidden layers of an MLP
MAX_GRID_STEPS = 101  # points per axis of a landscape slice (101 x 101 in 2D)
MAX_BER_POINTS = 30  # points in a BER sweep
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # checkpoint upload
MAX_CSV_BYTES = 5 * 1024 * 1024  # CSV upload
MAX_CSV_COLUMNS = 256  # features + label
MAX_CSV_ROWS = 50_000
MAX_CLASSES = 100
MAX_FLIP_COUNT = 1_000_000  # exact flips per trial
MAX_MODEL_BYTES = 64 * 1024 * 1024  # imported model (.onnx / .pt2) file
MAX_ONNX_NODES = 5000  # nodes in an imported ONNX graph
MAX_MODEL_INPUT = 1_000_000  # values per input row of an imported model
MAX_DATA_BYTES = 64 * 1024 * 1024  # user data file (.npz)
MAX_DATA_ROWS = 100_000  # rows of a user data file
