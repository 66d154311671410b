"""Experience retrieval, the paper's future work: a nearest-neighbour index per env built
from its expert dataset (:mod:`.index`), the 1-NN behaviour-cloning policy that acts as the
nearest expert transition did (:mod:`.policy`), and the retrieval context that shows a chat
model the nearest expert transitions instead of its own history (:mod:`.context`)."""
