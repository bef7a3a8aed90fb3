package node

import (
	"net/http"

	"github.com/guild-ledger/guild/node/api"
)

// healthRoutes serves the probes of an orchestrator or load balancer:
//   - GET /healthz: the process is alive and its event loop answers within loopAnswerTimeout.
//     A stalled chain is not a reason to restart the process, so it does not fail then.
//   - GET /readyz: the node is fit to serve: not stalled, not catching up, connected, no store
//     failure, disk not nearly full. 503 lists the reasons.
//   - GET /health: the older name of /healthz.
func (n *Node) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", n.handleHealthz)
	mux.HandleFunc("GET /health", n.handleHealthz)
	mux.HandleFunc("GET /readyz", n.handleReadyz)
}

func (n *Node) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.probeLoop(r.Context(), loopAnswerTimeout); !ok {
		writeJSON(w, http.StatusServiceUnavailable, api.HealthResponse{Status: "unresponsive",
			Code: api.CodeUnavailable, Error: "the node's event loop did not answer within " + loopAnswerTimeout.String()})
		return
	}
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "ok"})
}

func (n *Node) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if reasons := n.readiness(n.host.ConnectedPeers()); len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, api.ReadyResponse{Ready: false, Reasons: reasons})
		return
	}
	writeJSON(w, http.StatusOK, api.ReadyResponse{Ready: true})
}

// writeInternalError answers 500 for a request that failed while doing what. A store fault is
// logged, counted and reported by /readyz, and the client gets a generic message: the paths and
// engine messages are for the operator. Anything else is a bug, logged with its error, and the
// client gets a generic message too: an error's text may carry the same internals.
const internalErrorMessage = "internal error; see the node's log"

func (n *Node) writeInternalError(w http.ResponseWriter, what string, err error) {
	if isStoreFault(err) {
		n.storeFailed(what, err)
		writeError(w, http.StatusInternalServerError, api.CodeStoreFault, storeFaultMessage)
		return
	}
	n.log.Error("internal error answering an API request: "+what, "err", err)
	writeError(w, http.StatusInternalServerError, api.CodeInternal, internalErrorMessage)
}

// healthStatus fills the health fields of GET /v1/status.
func (n *Node) healthStatus(resp *api.StatusResponse) {
	resp.LastBlockTimeMs = n.health.lastBlockMs.Load()
	resp.LastBlockHeaderMs = n.health.lastBlockAt.Load()
	resp.CatchingUp = n.health.catchingUp.Load()
	resp.Stalled = n.health.stalled.Load()
	resp.EarliestHeight = n.blocks.Earliest()
}
