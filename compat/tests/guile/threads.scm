;;; threads.scm — threads (call-with-new-thread, mutexes, condition
;;; variables) allocating steadily while others collect: lists, vectors,
;;; strings and a shared table survive with the right contents.
(use-modules (ice-9 threads) (srfi srfi-1))

(define lock (make-mutex))
(define table (make-hash-table))
(define total 0)
(define (work id)
  (let loop ((round 0) (acc '()))
    (if (= round 200)
        (fold + 0 (map (lambda (v) (vector-ref v 1)) acc))
        (let* ((v (vector id round (make-string 40 (integer->char (+ 65 id)))))
               (l (iota 50 round))
               (s (apply string-append (map number->string l))))
          (with-mutex lock
            (hash-set! table (cons id round) (string-length s))
            (set! total (+ total (apply + l))))
          (when (zero? (modulo round 50)) (gc))
          (loop (1+ round) (if (< (length acc) 20) (cons v acc) (cons v (take acc 19))))))))
(define threads (map (lambda (id) (call-with-new-thread (lambda () (work id)))) (iota 6)))
;; The main thread collects while they run.
(do ((i 0 (1+ i))) ((= i 20)) (gc) (make-list 1000 i))
(define results (map join-thread threads))
(display "results: ") (display results) (newline)
(display "total: ") (display total) (newline)
(display "entries: ") (display (hash-count (const #t) table)) (newline)
(display "lengths: ") (display (hash-fold (lambda (k v acc) (+ v acc)) 0 table)) (newline)
;; Producer and consumer through a condition variable.
(define q '())
(define cv (make-condition-variable))
(define consumer
  (call-with-new-thread
   (lambda ()
     (let loop ((got 0) (sum 0))
       (if (= got 10000)
           sum
           (let ((x (with-mutex lock
                      (let wait () (when (null? q) (wait-condition-variable cv lock) (wait)))
                      (let ((x (car q))) (set! q (cdr q)) x))))
             (loop (1+ got) (+ sum (string->number (cdr x))))))))))
(do ((i 0 (1+ i))) ((= i 10000))
  (with-mutex lock
    (set! q (append q (list (cons i (number->string i)))))
    (signal-condition-variable cv))
  (when (zero? (modulo i 2000)) (gc)))
(display "consumed: ") (display (join-thread consumer)) (newline)
