;;; weak-tables.scm — weak-key and weak-value hash tables lose exactly
;;; their dead entries after (gc). The dead keys and values are made in a
;;; thread that has exited (joined), so no stack or register of a live
;;; thread can hold them conservatively; the live ones stay in a list.
(use-modules (ice-9 threads) (srfi srfi-1))

(define n 2000)
(define live-keys (map (lambda (i) (list 'key i)) (iota n)))
(define wk (make-weak-key-hash-table))
(define wv (make-weak-value-hash-table))
(define wkv (make-doubly-weak-hash-table))

;; Live: keys (and values) kept in live-keys.
(for-each (lambda (k) (hashq-set! wk k (cadr k))
                      (hash-set! wv (cadr k) k)
                      (hashq-set! wkv k k))
          live-keys)
;; Dead: made and dropped in another thread.
(join-thread
 (call-with-new-thread
  (lambda ()
    (do ((i 0 (1+ i))) ((= i n))
      (let ((k (list 'dead i)))
        (hashq-set! wk k i)
        (hash-set! wv (+ n i) (list 'dead-value i))
        (hashq-set! wkv k (list 'dead-value i)))))))

(define (count-entries t) (hash-fold (lambda (k v acc) (1+ acc)) 0 t))
(display "before gc, the live ones at least: ")
(display (every (lambda (t) (>= (count-entries t) n)) (list wk wv wkv)))
(newline)
(do ((i 0 (1+ i))) ((= i 3)) (gc))
(display "after gc: ")
(display (list (count-entries wk) (count-entries wv) (count-entries wkv)))
(newline)
;; Every live entry is still there, with its value.
(display "live entries intact: ")
(display (every (lambda (k) (and (eqv? (hashq-ref wk k) (cadr k))
                                 (eq? (hash-ref wv (cadr k)) k)
                                 (eq? (hashq-ref wkv k) k)))
                live-keys))
(newline)
;; No dead key or value is left.
(display "dead entries gone: ")
(display (list (hash-fold (lambda (k v acc) (if (eq? (car k) 'dead) (1+ acc) acc)) 0 wk)
               (hash-fold (lambda (k v acc) (if (>= k n) (1+ acc) acc)) 0 wv)
               (hash-fold (lambda (k v acc) (if (eq? (car k) 'dead) (1+ acc) acc)) 0 wkv)))
(newline)
