;;; finalizers.scm — finalizers of foreign objects ((system foreign-object))
;;; run for the unreachable ones, once each, and never for a reachable one;
;;; pointers with a C finalizer (free) are reclaimed without trouble.
(use-modules (system foreign-object) (system foreign) (ice-9 threads) (srfi srfi-1))

(define finalized (make-hash-table))
(define lock (make-mutex))
(define (note! id)
  (with-mutex lock (hashv-set! finalized id (1+ (hashv-ref finalized id 0)))))
(define-foreign-object-type <res> make-res (res-id)
  #:finalizer (lambda (r) (note! (res-id r))))

(define n 1000)
(define kept (map make-res (iota n)))
(join-thread
 (call-with-new-thread
  (lambda ()
    (do ((i 0 (1+ i))) ((= i n)) (make-res (+ n i))))))

;; malloc'd blocks owned by pointer objects, freed by libc's free when the
;; pointer object dies.
(define malloc* (pointer->procedure '* (dynamic-func "malloc" (dynamic-link)) (list size_t)))
(define free* (dynamic-func "free" (dynamic-link)))
(join-thread
 (call-with-new-thread
  (lambda ()
    (do ((i 0 (1+ i))) ((= i 5000))
      (make-pointer (pointer-address (malloc* 64)) free*)))))

;; Finalizers run in Guile's finalizer thread: wait for them, boundedly.
(define (count) (with-mutex lock (hash-count (const #t) finalized)))
(let loop ((tries 0))
  (gc)
  (usleep 20000)
  (when (and (< (count) n) (< tries 250)) (loop (1+ tries))))
(display "finalized: ") (display (count)) (newline)
(display "only dead ones: ")
(display (every (lambda (id) (>= id n)) (hash-map->list (lambda (k v) k) finalized))) (newline)
(display "each once: ")
(display (every (lambda (v) (= v 1)) (hash-map->list (lambda (k v) v) finalized))) (newline)
(display "kept ones intact: ")
(display (equal? (map res-id kept) (iota n))) (newline)
